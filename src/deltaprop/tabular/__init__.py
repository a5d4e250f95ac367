"""Tabular data: raw tables, the data contract (schema and target) and the model that carries it."""
