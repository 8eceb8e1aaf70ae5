from refocus.cli import main

main()
