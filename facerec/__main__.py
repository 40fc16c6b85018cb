import sys

from facerec.cli.main import main

sys.exit(main())
