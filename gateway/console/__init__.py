"""The web console: static HTML/CSS/JS served at /console (no build step, no CDN).

The assets live in `static/` inside the package; every piece of data they show comes from the
gateway's own API with the API key the user logs in with (see docs/console.md).
"""
