"""sv-notice: Notifications: inbox, realtime push, email and webhooks."""
