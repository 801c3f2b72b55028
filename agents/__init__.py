"""Agent models (NeuroAI language models) and the learning rules that train them."""
