from bankstream.cli import main

raise SystemExit(main())
