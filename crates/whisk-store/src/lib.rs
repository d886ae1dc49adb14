//! Stores for entities, subjects and activations, and their SQLite adapter.
