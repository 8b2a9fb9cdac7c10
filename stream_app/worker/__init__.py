"""The live worker: the Faust app, its agent and timers, and the state it keeps between messages."""
