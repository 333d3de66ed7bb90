"""CRM sharing at the team's direction: webhooks (signed, retried from the store's outbox, only to allowed hosts)
and the payloads they and the export carry."""
