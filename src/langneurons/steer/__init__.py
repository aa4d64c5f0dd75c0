"""Steering the output language: interventions, decoding rules, generation, evaluation, sweep, frontier."""
