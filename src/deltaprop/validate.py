"""One validator for JSON metadata read from files: depth, types, ranges, lengths and finiteness."""
