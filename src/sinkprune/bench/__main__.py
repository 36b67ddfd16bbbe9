from sinkprune.bench import main

main()
