"""Applications built on the medseg core (the core never imports them): the web viewer
(:mod:`medseg.apps.viewer`, ``medseg-view``) and the clinical cross-check (:mod:`medseg.apps.clinical`,
``medseg-diagnose``/``medseg-db``)."""
