import sys

from radiobio.cli import main

sys.exit(main())
