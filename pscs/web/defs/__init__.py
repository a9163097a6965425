"""What the records routes take in: the request bodies of the JSON API and the fields of the
console's forms, one module per domain (the routes are in :mod:`pscs.web.routes`).

A form model is its JSON model that also accepts the page's ``csrf_token`` field (checked
before the route runs), so a form and the API are validated alike and call one service."""
