from initopt.cli import main

main()
