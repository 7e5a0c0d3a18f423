"""The LLM simulator: an OpenAI-compatible endpoint for tests, demos and benchmarks."""
