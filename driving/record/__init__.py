"""Recording demonstrations: the expert with DART noise, shifted views, keyboard driving."""
