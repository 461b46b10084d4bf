"""A weather voice agent and its test suite: copy both and make them yours."""
