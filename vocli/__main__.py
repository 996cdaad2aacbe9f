import sys

from vocli.cli.app import main

sys.exit(main())
