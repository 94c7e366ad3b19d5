"""The fixtures of the end-to-end tests, one pytest plugin per target kind, registered
by ``pytest_plugins`` in ``tests/conftest.py``. The labs they yield are in
``tests.labs``."""
