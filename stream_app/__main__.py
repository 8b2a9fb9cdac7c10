from stream_app.cli import main

raise SystemExit(main())
