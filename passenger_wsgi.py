"""Entry point for Phusion Passenger, which looks for this file in the app root.

Passenger may start the app with the system Python; switch to the project's
virtualenv when there is one, so the packages in requirements.txt are found.
"""

import os
import sys
from pathlib import Path

APP_ROOT = Path(__file__).resolve().parent
VENV = APP_ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"

running_in_venv = Path(sys.prefix).resolve() == VENV.resolve()
if VENV_PYTHON.exists() and not running_in_venv and os.environ.get("CRM_PASSENGER_REEXEC") != "1":
    os.environ["CRM_PASSENGER_REEXEC"] = "1"  # never loop if the venv is broken
    os.execl(str(VENV_PYTHON), str(VENV_PYTHON), *sys.argv)

sys.path.insert(0, str(APP_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

from config.serving import load_application  # noqa: E402

application = load_application(get_wsgi_application)
