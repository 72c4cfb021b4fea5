"""The web UI for people: server-rendered HTML (Jinja2, autoescaped), one stylesheet, no
JavaScript, behind the same credentials as the index (a browser session, basic auth, or a
repository's anonymous read).

- ``GET /``: without a credential, a short page with the login link; with one, the projects of
  the repository it opens (``?q=`` searches names, ``?sort=name|updated``, ``?page=``).
- ``GET /project/<project>/``: one project: its status, install commands, description (its
  core metadata rendered as pypi.org does), and its versions and files, newest first.
- ``GET /static/style.css``: the stylesheet.

``views`` computes what a page shows from the index, ``description`` renders descriptions
(``limits`` tells those that would cost too much), ``render`` holds the templates,
``resources`` answers the requests.
"""
