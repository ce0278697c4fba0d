"""The LLM front end: context, prompts, structured generation, safe fixes and a bounded repair loop."""
