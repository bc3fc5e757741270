"""What the console's pages read, shared between them: one module per source
(the gateway itself, sv-log's statistics, sv-config's route releases, ...)."""
