"""The scripted two-party sales calls of ``benchmarks/conversations.py``: who says what, in which voice, and when.

Everything is written as it is spoken (numbers in words), so the reference is the text itself. Two kinds of
placeholder are expanded to spoken digits and tagged in the reference, for the "digits recognised" check:
``{card:4556 7375 8689 9855}`` (a Luhn-valid card number, read in its groups) and ``{phone:312 555 0147}``.

Timing of a line: ``gap`` seconds after the conversation's last speech ended (negative: it starts that much before,
an interruption); a backchannel (``during``) starts at that fraction of the previous line instead and does not move
the timeline. A ``tight`` line is a long turn whose sentences are joined with no pause over 0.15 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Voice:
    engine: Literal["flite", "festival"]
    name: str  # flite's -voice, or festival's voice_NAME


@dataclass(frozen=True)
class Line:
    speaker: Literal["rep", "customer"]
    text: str
    gap: float = 0.5
    during: float | None = None  # a backchannel: starts at this fraction of the previous line
    tight: bool = False


@dataclass(frozen=True)
class Script:
    name: str
    rep: Voice
    customer: Voice
    lines: tuple[Line, ...]


FLITE_RMS = Voice("flite", "rms")
FLITE_SLT = Voice("flite", "slt")
FLITE_AWB = Voice("flite", "awb")
FLITE_KAL = Voice("flite", "kal16")
FEST_SLT = Voice("festival", "cmu_us_slt_arctic_hts")
FEST_KAL = Voice("festival", "kal_diphone")
FEST_KED = Voice("festival", "ked_diphone")


def rep(text: str, gap: float = 0.5, *, tight: bool = False) -> Line:
    return Line("rep", text, gap, tight=tight)


def customer(text: str, gap: float = 0.5, *, tight: bool = False) -> Line:
    return Line("customer", text, gap, tight=tight)


def rep_aside(text: str, at: float) -> Line:
    return Line("rep", text, during=at)


def customer_aside(text: str, at: float) -> Line:
    return Line("customer", text, during=at)


NORTHWIND = Script(
    "northwind_discovery",
    FEST_SLT,
    FLITE_RMS,
    (
        rep("Hi Marcus, this is Dana from Zorvexa. Thanks for making time this afternoon."),
        customer("Sure, I have about twenty minutes.", 0.4),
        rep("Perfect. How does your team handle calls today?", 0.6),
        customer(
            "We have forty two reps in two offices. They use Acme Cloud for the dialer, and the recordings just pile "
            "up. Honestly, nobody listens to them.",
            0.5,
        ),
        rep_aside("Right.", 0.55),
        rep("That is very common. Why look for something new now?", 0.3),
        customer(
            "Our win rate dropped from twenty eight percent to nineteen percent in six months, and I cannot tell you "
            "why. My managers are guessing.",
            0.7,
        ),
        rep(
            "That is exactly the problem we built Zorvexa for. Every call is transcribed live while your reps talk, "
            "and the platform flags the moments that matter, like pricing questions, competitor mentions and next "
            "steps. Your managers get a short summary of each call instead of a forty minute recording. Over time the "
            "dashboard shows which talk tracks actually win deals, so coaching is based on real conversations rather "
            "than gut feeling. Most teams your size connect it to their dialer in one afternoon.",
            0.5,
            tight=True,
        ),
        customer_aside("Okay.", 0.4),
        customer("Sounds good, but what does it cost? Acme Cloud quoted us thirty five dollars a seat.", 0.6),
        rep(
            "Our standard plan is forty nine dollars per seat per month, billed annually. For forty two seats that "
            "comes to about two thousand dollars a month.",
            0.4,
        ),
        customer("Hmm, that is a lot more than thirty five.", 0.8),
        rep("It is, but their price does not include any analytics. Could we run a free two week pilot?", 0.3),
        customer(
            "No, no, no, two weeks is too short for our sales cycle. Make it thirty days and I can get it approved.",
            0.6,
        ),
        rep("Thirty days works.", -0.3),
        rep("I will send the agreement today. What is the best number to reach you?", 0.3),
        customer("My direct line is {phone:312 555 0147}.", 0.5),
        rep("Great. Let's talk again on Thursday, March fourteenth, at ten in the morning.", 0.4),
        customer("Thursday works.", 0.5),
    ),
)

BAYSIDE = Script(
    "bayside_dental_card",
    FLITE_RMS,
    FEST_SLT,
    (
        rep("Good morning, this is Sam with Zorvexa, returning your call. Is this Priya?"),
        customer("Yes, hi Sam.", 0.5),
        rep("Your message said the front desk is missing calls. What is going on?", 0.4),
        customer(
            "Well, it started in January when we opened our third clinic. We have six people at the front desk, and "
            "they answer calls for all three locations. Patients call to book cleanings, to move appointments, and to "
            "ask about insurance, and a lot of those calls go to voicemail during the morning rush. Last month we "
            "counted more than three hundred missed calls, and every one of them could be a patient who books with "
            "someone else. My manager asked me to find a tool that shows us when the calls come in and why people are "
            "calling, because right now we are really really guessing about how many people we need at the desk.",
            0.6,
            tight=True,
        ),
        rep_aside("I see.", 0.5),
        rep("That helps, thank you. What phone system do you use?", 0.5),
        customer("Quillmark. It came with the building.", 0.4),
        rep(
            "Zorvexa connects to Quillmark directly, so nothing changes for your staff, and every call is tagged "
            "with its reason.",
            0.7,
        ),
        customer("And the price? We are a small business.", 0.3),
        rep(
            "For six people, the starter plan is twenty nine dollars per seat, so one hundred seventy four dollars "
            "a month, with no setup fee.",
            0.5,
        ),
        customer("That is within my budget. Can I put the first month on a card today?", 0.6),
        customer("Okay. The card number is {card:4556 7375 8689 9855}.", 0.8),
        rep("Thank you, Priya. And the name on the card?", 0.5),
        customer("Priya Raman.", 0.4),
        rep(
            "Perfect. You will get a receipt by email, and our onboarding team will call you on Monday.",
            0.5,
        ),
        customer("Is there a number I can call if something goes wrong?", 0.5),
        rep("Yes, our support line is {phone:800 555 0199}.", 0.4),
        customer("Thanks, Sam. Have a good day.", 0.6),
        rep("You too, bye now.", -0.2),
    ),
)

ACME_SWITCH = Script(
    "acme_cloud_switch",
    FLITE_AWB,
    FLITE_SLT,
    (
        rep("Hello Jordan, it is Alex from Zorvexa, calling back after your renewal meeting."),
        customer("Hi Alex. Yes, the meeting was this morning, and it did not go the way I hoped.", 0.6),
        rep("What happened?", 0.3),
        customer(
            "Acme Cloud wants to raise our price by eighteen percent when the contract renews on June first. My "
            "director asked me to get a second quote before the end of the month.",
            0.4,
        ),
        rep_aside("Okay.", 0.6),
        rep("That makes sense. Are you happy with Acme Cloud apart from the price?", 0.5),
        customer(
            "Not really. The transcripts are slow, sometimes a full day late, and the search is very very basic. "
            "Our team leads gave up on it.",
            0.5,
        ),
        rep(
            "Then let me explain how a move from Acme Cloud usually works, because most teams worry about that part "
            "the most. First we export your call history, including the recordings and the notes, so nothing is "
            "lost. Then we connect your dialer to Zorvexa in parallel, and for two weeks both systems run side by "
            "side, so your reps can compare them on real calls. Transcripts show up during the call, not the next "
            "day, and every call is searchable by topic, by competitor or by the words the customer used. When your "
            "team is happy, we switch off the old connection. A team of your size is usually fully moved in less "
            "than three weeks.",
            0.6,
            tight=True,
        ),
        customer_aside("Right.", 0.35),
        customer("Three weeks is fine. What about the price for sixty five seats?", 0.5),
        rep(
            "For sixty five seats on the growth plan, we can offer forty two dollars per seat per month, with the "
            "first month free.",
            0.4,
        ),
        customer("And what does Acme Cloud charge you, I mean us, after the increase? About fifty dollars.", 0.7),
        rep("So you would save eight dollars per seat every month.", 0.3),
        customer("If the numbers hold up, yes. Can you put that in writing?", 0.5),
        rep("Absolutely. I will send a proposal by Friday, May twentieth.", 0.4),
        customer("Please copy my director. Her name is Elena Brooks.", 0.6),
        rep("Will do. And should I call your office line?", 0.4),
        customer("Use my mobile, it is {phone:415 555 0123}.", 0.5),
        rep("Got it. Thanks, Jordan, talk soon.", 0.5),
    ),
)

HARBOR_HOTELS = Script(
    "harbor_hotels_story",
    FEST_KAL,
    FEST_SLT,
    (
        rep("Good afternoon, this is Chris at Zorvexa. You filled in our form?"),
        customer("Yes, that was me. My name is Grace, I run the reservations team for Harbor Hotels.", 0.5),
        rep("Nice to meet you, Grace. How does the team work today?", 0.6),
        customer(
            "So we have twelve agents who take bookings for nine hotels along the coast. In the summer the phones "
            "never stop, and last year we lost a lot of group bookings because nobody followed up. A wedding planner "
            "called three times about forty rooms, and each time she spoke to a different agent who had no idea what "
            "the last one promised. In the end she booked with another hotel across the bay. When I listened to the "
            "recordings later, the information was all there, but nobody had the time to go back and find it. That is "
            "really why I filled in your form.",
            0.5,
            tight=True,
        ),
        rep_aside("Sure.", 0.6),
        rep(
            "That is a painful story. With Zorvexa, every call is summarised automatically, so the next agent "
            "sees what was promised before picking up.",
            0.3,
        ),
        customer("Does it work with Acme Cloud? That is where our calls are recorded.", 0.6),
        rep("Yes, we import from Acme Cloud every night.", 0.4),
        customer("What would twelve seats cost us?", 0.5),
        rep(
            "Twelve seats on the standard plan would be five hundred eighty eight dollars a month, and for a seasonal "
            "business we can pause seats in the winter.",
            0.5,
        ),
        customer("Yes yes, pausing seats would help a lot.", 0.4),
        rep("I can set up a demo with your team leads. Does next Tuesday, April ninth, work?", 0.5),
        customer("Tuesday is good, after two in the afternoon.", 0.6),
        rep("Great, three o'clock then. What number should I call?", 0.4),
        customer("Better to use the front office, {phone:207 555 0182}, and ask for Grace.", 0.5),
        rep("Noted. And to hold the pilot rate we take a deposit of one hundred dollars on a card.", 0.5),
        customer("Fine, use the company card, {card:4539 1488 0343 6467}.", 0.7),
        rep("Thank you, that went through. See you on Tuesday.", 0.5),
    ),
)

RENEWAL = Script(
    "renewal_negotiation",
    FLITE_SLT,
    FEST_KED,
    (
        rep("Hi Tom, this is Maya from Zorvexa. I wanted to talk about your renewal, which is coming up in July."),
        customer("Hi Maya. Good timing, we were just discussing it.", 0.5),
        rep("How has the last year been for your team?", 0.4),
        customer(
            "Mostly good. The reps like the live transcripts, and the coaching reports save my managers time.", 0.6
        ),
        rep("I am glad to hear that. Is there anything that is not working?", 0.3),
        customer(
            "I will be honest with you, because I would rather say this now than in July. Our budget for next year was "
            "cut by fifteen percent, and finance wants every tool to justify its cost. Quillmark approached us last "
            "month with an offer of thirty dollars per seat, and on paper that looks much better than what we pay "
            "you. I do not think their product is as good, but I have to bring two options to the budget meeting, and "
            "right now the cheaper one is very hard to argue against. If you can help me make the case, I would much "
            "rather stay with you.",
            0.5,
            tight=True,
        ),
        rep_aside("Of course.", 0.45),
        rep("That is fair, and thank you for telling me early.", 0.6),
        rep(
            "Your team closed two hundred fourteen deals through calls we analysed last year. If even five of those "
            "came from better coaching, the tool has paid for itself.",
            0.3,
        ),
        customer("Can you send me that report? Finance likes numbers.", 0.5),
        rep(
            "Yes. And if you renew for two years instead of one, I can lower the price from forty five to thirty "
            "nine dollars per seat.",
            0.4,
        ),
        customer("Thirty nine. Hmm. Quillmark is still cheaper, but not by much.", 0.7),
        rep("And there is no migration cost, no retraining, and no risk.", -0.4),
        customer("True. Let me take it to the meeting on June twelfth.", 0.5),
        rep("Shall I prepare the paperwork so you can sign right after the meeting?", 0.4),
        customer("Yes, and charge the deposit to the same card as last year.", 0.6),
        rep("Actually, that card expired in May. Could you read me the new number?", 0.5),
        customer("Sure, it is {card:4916 3385 0608 2832}.", 0.4),
        rep("Thank you, Tom. I will call you on June thirteenth.", 0.5),
    ),
)

SECURE_BROKERS = Script(
    "secure_brokers_security",
    FEST_SLT,
    FLITE_KAL,
    (
        rep("Hello Mr Patel, this is Rachel from Zorvexa, for the security review."),
        customer("Good morning. I have our list of questions here.", 0.6),
        rep("Great, let's go through them.", 0.3),
        customer("First question. Our agents sometimes take card payments on the phone. What happens to those?", 0.5),
        rep(
            "Card numbers are detected while the customer is still speaking, and they are removed from the "
            "transcript and from the stored recording before anything is written to disk. Your managers only see a "
            "placeholder where the number was. The same applies to bank account numbers and social security numbers. "
            "All data stays in your own region, it is encrypted at rest and in transit, and you decide how long calls "
            "are kept, from thirty days up to seven years. Every access by our support team is logged, and you can "
            "export that log at any time for your auditors. We also sign a data processing agreement before the pilot "
            "starts.",
            0.6,
            tight=True,
        ),
        customer_aside("Okay.", 0.5),
        customer("Good. Can we test it with a card number?", 0.5),
        rep("Yes, please use a test card.", 0.4),
        customer("Let me read one now. {card:5425 2334 3010 9903}.", 0.6),
        rep("Thank you. Live, that would already be hidden.", 0.5),
        customer("Very good. What about pricing for an insurance brokerage with thirty agents?", 0.4),
        rep(
            "The compliance plan is fifty nine dollars per seat per month, so one thousand seven hundred seventy "
            "dollars for thirty agents.",
            0.5,
        ),
        customer("That is higher than we planned. Acme Cloud offered forty eight.", 0.7),
        rep("Does Acme Cloud remove card numbers from the recordings?", 0.3),
        customer("No, no, they only hide them in the transcript.", 0.4),
        rep("Then your auditors would still find them in the audio.", 0.4),
        customer("Fair point. Send me the agreement.", 0.6),
        rep("I will. Who should I copy?", 0.4),
        customer("Our compliance officer, Linda Moore. Her line is {phone:646 555 0175}.", 0.5),
        rep("Thank you. I will follow up on Wednesday, the second of October.", 0.5),
    ),
)

STARTUP = Script(
    "startup_quick_discovery",
    FLITE_KAL,
    FLITE_SLT,
    (
        rep("Hey Nina, it is Ben from Zorvexa. Is now still okay?"),
        customer("Yes, hi Ben. Sorry, I am walking between meetings, but go ahead.", 0.5),
        rep("No problem. How many people are on your sales team right now?", 0.4),
        customer("Eight account executives and four development reps. We are hiring six more by September.", 0.5),
        rep("And what do you use for calls today?", 0.3),
        customer(
            "Honestly, a bit of everything. The development reps use a cheap dialer, the account executives use "
            "video calls, and the notes end up in three different places. When a deal is handed over, the account "
            "executive has to call the customer and ask the same questions again, which customers hate. Last week a "
            "prospect told us we were the third person from our company to ask about her budget, and she was not "
            "joking. Our head of sales wants one place where every conversation is recorded, transcribed and "
            "summarised, so the handover is clean. We also want to know which questions lead to a second meeting, "
            "because our conversion from first call to demo is only twelve percent.",
            0.6,
            tight=True,
        ),
        rep_aside("Right.", 0.3),
        rep_aside("Yeah.", 0.75),
        rep("That handover problem is exactly what our deal summaries solve.", 0.4),
        customer("Do you integrate with video calls too, or only phones?", 0.5),
        rep("Both. Phone, video and even recorded meetings you upload later.", 0.4),
        customer("Good. Price range?", 0.3),
        rep(
            "For twelve seats, our startup plan is thirty nine dollars per seat per month, and it includes the deal "
            "summaries.",
            0.5,
        ),
        customer("Okay, that is reasonable. Acme Cloud wanted a minimum of twenty five seats.", 0.6),
        rep("We have no minimum. Can I send you a trial link for a fourteen day trial?", -0.3),
        customer("Yes, send it to my email. And call me on my cell, {phone:628 555 0139}.", 0.5),
        rep("Perfect. Shall we check in on Friday, the twenty second?", 0.4),
        customer("Friday works. Thanks Ben, bye.", 0.5),
    ),
)

UNIVERSITY = Script(
    "university_next_steps",
    FEST_KED,
    FLITE_AWB,
    (
        rep("Good morning, this is Daniel from Zorvexa, following up on the demo last week. Is this Professor Hughes?"),
        customer("Speaking. Yes, thank you for the demo, the admissions team liked it a lot.", 0.6),
        rep("That is great to hear. What did they like most?", 0.4),
        customer("The live summaries. Our advisors talk to hundreds of students a week.", 0.5),
        rep(
            "Let me walk you through the next steps, so you know exactly what happens after today. First, I will send "
            "you a short agreement for a pilot with ten advisors, which your procurement office can review. Once it is "
            "signed, our team connects your phone system in one day, and we run a training session for the advisors "
            "of about one hour. During the pilot you get a weekly report with the most common student questions, and "
            "at the end we meet again to decide on the full rollout. The pilot costs nine hundred dollars in total, "
            "and that amount is credited against the first year if you continue.",
            0.5,
            tight=True,
        ),
        customer_aside("Right.", 0.5),
        customer("That is clear. When could the pilot start?", 0.4),
        rep("If the agreement is signed by August fifth, we can start on August twelfth.", 0.5),
        customer("Procurement takes a while, but that should be possible.", 0.6),
        rep("And who should I send the agreement to?", 0.3),
        customer("Send it to me, and copy our procurement office at {phone:617 555 0104}.", 0.5),
        rep("Will do. How do you want to pay the pilot fee?", 0.4),
        customer("We have a department card. The number is {card:3714 496353 98431}.", 0.6),
        rep("Thank you, Professor. You will get a receipt today.", 0.5),
        customer(
            "One more question. We also spoke to Quillmark, and they said they could start in July. Why is your "
            "start later?",
            0.6,
        ),
        rep("Because the training and the connection take one week, and we want the advisors ready.", 0.4),
        customer("Okay. That is fair enough.", 0.5),
        rep("Thank you. I will send everything this afternoon. Goodbye.", 0.4),
        customer("Goodbye.", -0.1),
    ),
)

SCRIPTS: tuple[Script, ...] = (
    NORTHWIND,
    BAYSIDE,
    ACME_SWITCH,
    HARBOR_HOTELS,
    RENEWAL,
    SECURE_BROKERS,
    STARTUP,
    UNIVERSITY,
)
