"""Finding the language neurons: recording responses, the store, AP expertise, LAPE, the run."""
