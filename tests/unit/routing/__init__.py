"""Tests of sibyl.routing: assignment, circuit breakers, fallback chains, bandits."""
