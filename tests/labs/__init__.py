"""What the end-to-end tests drive syncd and look at a target with: labs (a syncd work
folder plus one real server) and the contracts and helpers the test modules share.

Plain classes and functions, imported by the test modules and by the fixtures of
``tests.plugins``; the fixtures themselves live there."""
