"""The dashboard ``fastinvoke serve`` shows at ``/``: every function's live figures,
pushed once a second (server-sent events), charts drawn by uPlot (MIT, vendored in
``static/`` so the page works offline), and a log tail with CloudWatch filter patterns."""
