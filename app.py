"""svd-demo web app: `python app.py --help` lists every option and its environment variable.

The same as `svd-demo app` once the package is installed; the code is `svd_demo/web/server.py`.
"""

from svd_demo.web.server import create_app, main

__all__ = ["create_app", "main"]

if __name__ == "__main__":
    main()
