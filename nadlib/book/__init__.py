"""What the book shows: figures, widgets, Plotly explorers and coverage tables.

Nothing in the science of nadlib imports this folder; it reads results and calls the library:

* :mod:`nadlib.book.plotting` -- the figures of Chapters 1-3 in book order (Matplotlib) and their tables;
* :mod:`nadlib.book.plotting_signature`, :mod:`nadlib.book.plotting_collapse` -- Chapters 4 and 5;
* :mod:`nadlib.book.interactive` -- kernel-free Plotly views of stored results (the static site);
* :mod:`nadlib.book.widgets` -- ipywidgets for what is computed live (training a direction, a NAD index, a
  poison level, a collapse run);
* :mod:`nadlib.book.coverage` -- what each chapter shows for each of the paper's networks (from the catalogue);
* :mod:`nadlib.book.card` -- the signature card of any architecture (``python -m nadlib card``).

A chapter imports what it needs: ``from nadlib.book import plotting, widgets``.
"""
