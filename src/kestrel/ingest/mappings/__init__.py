"""Field mappings as data: source field → schema column, one module per source family."""
