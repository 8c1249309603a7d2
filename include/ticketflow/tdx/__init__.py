"""TeamDynamix: the Web API client, the queue actions and their exactly-once log."""
