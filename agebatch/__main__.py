from agebatch.cli import main

main()
