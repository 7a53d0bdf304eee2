"""Built-in search-space declarations (YAML); load them with `nas.load_space`."""
