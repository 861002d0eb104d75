"""Scripted stand-ins for the interfaces (LLM, TTS, Face, Sink) on the loop clock: for the test suite, the
benchmarks, and anyone testing a new backend or front end against the real Turn, Director and session."""
