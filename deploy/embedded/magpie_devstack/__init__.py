"""Development-only tooling: embedded infrastructure, process supervisor, demo campaign."""
