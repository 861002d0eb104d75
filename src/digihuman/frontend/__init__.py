"""Front ends over the conversation session: the terminal commands (`say`, `chat`, `run`)."""
