DFS.main()
