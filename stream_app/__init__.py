"""The shell around the core: Faust app, CLI, embedded broker, demo."""
