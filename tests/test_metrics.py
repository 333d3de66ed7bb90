"""Call metrics from final segments: talk ratio, monologues, interactivity, patience, questions, pace."""

from __future__ import annotations

import pytest

from media_server.insights.metrics import Said, compute, count_fillers, longest_stretch

CALL = [
    Said("rep", 0.0, 10.0, "Hi Lee, thanks for joining. How is the rollout going?"),
    Said("customer", 11.0, 15.0, "Slow, honestly. Um, the dialer keeps dropping."),
    Said("rep", 16.0, 40.0, "I see. So our platform, you know, handles that with a retry queue and more."),
    Said("customer", 40.5, 41.0, "Right."),  # an interjection: the monologue goes on
    Said("rep", 41.0, 70.0, "And the reporting, um, covers every team in one view."),
    Said("customer", 69.0, 80.0, "Wait, can it export to our CRM? We need that."),  # cuts in before the rep ended
    Said("rep", 82.0, 85.0, "Yes, it can."),
]


def test_the_metrics_of_a_scripted_call() -> None:
    m = compute(CALL, duration=90.0, fillers=["um", "you know"], tracker_hits={"CRM": 1})
    assert m.talk_time == {"rep": 66.0, "customer": 15.5}
    assert m.talk_ratio == pytest.approx(66.0 / 81.5, abs=1e-3)
    assert m.longest_monologue == 54.0  # 16 to 70, through the customer's "Right."
    assert m.longest_customer_story == 11.0
    assert m.questions == {"rep": 1, "customer": 1}
    assert m.interruptions == {"customer": 1}  # at 69.0, the rep talking until 70.0
    assert m.patience == pytest.approx((1.0 + 0.0 + 2.0) / 3)  # the customer ended, the rep answered
    assert m.interactivity == pytest.approx(6 / 1.5)
    assert m.words_per_minute["customer"] == pytest.approx(60 * 18 / 15.5, abs=0.1)
    assert m.filler_rate["rep"] == pytest.approx(2 / 38, abs=1e-3)
    assert m.tracker_hits == {"CRM": 1}
    assert set(m.to_json()) >= {"talkRatio", "longestMonologue", "patience", "questions", "disposition"}


def test_questions_are_counted_with_or_without_question_marks() -> None:
    from media_server.insights.metrics import questions_in

    assert questions_in("How is it going? Can you hear me?") == 2
    assert questions_in("hi this is dana how is your current dialer working out") == 1
    assert questions_in("that sounds useful can you send me the pricing for 20 seats") == 1
    assert questions_in("I will follow up by email does Tuesday work for you") == 1
    assert questions_in("sure we can start that review today") == 0
    assert questions_in("what we do is simple and we have been looking at options") == 0


def test_a_punctuated_statement_that_opens_like_a_question_is_none() -> None:
    """Whisper punctuates: its "?" are the questions. The dashboard's "Questions: Customer 1" on a call with no
    question was the unpunctuated-text heuristic reading "Had he" (and "is your", "was that"...) in statements."""
    from media_server.insights.metrics import questions_in

    said = "Had he married a more amiable woman, he might have been made still more respectable than he was."
    assert questions_in(said) == 0
    assert questions_in("Here is your order. It was that one.") == 0
    assert questions_in("The total is $4,111 today, is it?") == 1
    assert questions_in("had he married a more amiable woman") == 1  # unpunctuated: the heuristic still reads it
    # A question Whisper left without its question mark still opens as one; a condition does not.
    assert questions_in("Thank you. I will follow up by email. Does Tuesday work for you.") == 1
    assert questions_in("How is your dialer working out. Great.") == 1
    assert questions_in("Thank you, I will follow up with the next steps by email does Tuesday work for you") == 1
    assert questions_in("Were it cheaper, we would buy it. Should you need more, call us.") == 0
    m = compute([Said("customer", 0.0, 6.0, said), Said("rep", 6.5, 8.0, "Indeed, a fine story.")], duration=8.0)
    assert m.questions == {"customer": 0, "rep": 0}
    # A final Whisper cut at a pause has no full stop of its own: the call's other finals say it punctuates.
    cut = [
        Said("rep", 0.0, 3.0, "He was not an ill-disposed young man."),
        Said(
            "customer", 3.5, 9.0, "Had he married a more amiable woman he might have been made still more respectable"
        ),
    ]
    assert compute(cut, duration=9.0).questions == {"rep": 0, "customer": 0}
    assert questions_in(cut[1].text, punctuates=True) == 0 and questions_in(cut[1].text) == 1


def test_edge_cases() -> None:
    empty = compute([], duration=0.0)
    assert (empty.talk_ratio, empty.patience, empty.interactivity) == (None, None, 0.0)
    assert longest_stretch([Said("rep", 0, 5, "a")], "customer") == 0.0
    assert count_fillers("Um, I mean, um... like, you know", ["um", "i mean", "you know"]) == 4
