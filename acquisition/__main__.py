from acquisition.cli import main

raise SystemExit(main())
