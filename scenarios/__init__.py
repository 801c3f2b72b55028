"""Scenarios: the games agents play (what is seen, what counts as success, the reward)."""
