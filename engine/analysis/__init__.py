"""Analyses over a run's store that explain what the curves show (pure functions over loaded data)."""
