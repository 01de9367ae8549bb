"""POST /agent/run: a small tool-using agent loop over the proxy's own models."""
