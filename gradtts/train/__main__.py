from gradtts.train.cli import main

main()
