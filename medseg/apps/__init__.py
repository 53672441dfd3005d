"""Applications built on the medseg core (the core never imports them): the web viewer."""
