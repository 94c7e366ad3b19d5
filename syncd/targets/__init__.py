"""Target edges: each observes its managed scope and applies actions, translating its
library's errors into ``syncd.errors`` at the edge."""
