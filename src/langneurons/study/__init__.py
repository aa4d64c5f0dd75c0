"""Studies over finished runs: AP vs LAPE comparison, stability of the neuron sets."""
