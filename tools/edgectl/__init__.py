"""edgectl: run the local Edge stack from its topology file (``edgectl up``/``down``)."""
