"""Contract sources: each reads raw records and maps them onto canonical field names."""
