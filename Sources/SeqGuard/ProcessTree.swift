import SeqSystem

/// Ending every descendant of this process, which is a child subreaper: orphans of the tree
/// are reparented here, so "no children left" (waitid's ECHILD) means the whole tree is gone.
public struct ProcessTree {
    public var signals: SignalReceiver
    /// Children that are not part of the command, with their subtrees: never sampled, never
    /// ended here (a pipeline worker's device server lives across its steps).
    public var spared: Set<Int32> = []
    /// The processes the kernel keeps in the run's cgroups, when it has them: ended with the
    /// tree, should one have left it.
    public var cgroupMembers: (() -> Set<Int32>)?

    public init(signals: SignalReceiver, spared: Set<Int32> = []) {
        self.signals = signals
        self.spared = spared
    }

    /// Reaps every child that has ended (a spared one too). Returns true when no child is left at all.
    public func reapEnded(_ onReap: (Int32, TerminationStatus) -> Void) -> Bool {
        while true {
            do {
                guard let (pid, status) = try Spawn.reapAny() else { return false }
                onReap(pid, status)
            } catch {
                return true
            }
        }
    }

    /// The live descendants of this process but the spared ones, found over /proc, deepest first.
    public func descendants() -> [ProcStat] {
        let found = Processes.descendants(of: [Processes.currentPid], sparing: spared)
        guard let cgroupMembers else { return found }
        let known = Set(found.map(\.pid) + [Processes.currentPid])
        return cgroupMembers().subtracting(known).sorted().compactMap { try? ProcStat.read($0) } + found
    }

    /// Ends the whole tree through the teardown: SIGTERM (and SIGCONT) to every descendant,
    /// up to `grace` seconds for them to go (cut short when `escalate` says so), then SIGKILL
    /// until none is left. Every process that ends is reaped here.
    @available(*, noasync)
    @discardableResult
    public func end(_ teardown: Teardown, escalate: (() -> Bool)? = nil, onReap: (Int32, TerminationStatus) -> Void) -> Teardown.Report {
        if reapEnded(onReap) { return Teardown.Report() }
        // Parents before their children: a shell whose child died first would run on (the
        // next line of its script) for the moment before its own signal lands.
        let finder = Teardown.TreeFinder(roots: [], extra: { descendants().reversed().map { Teardown.Target($0.identity, command: $0.command) } })
        return teardown.run(find: finder.find, escalate: escalate, reap: { _ = reapEnded(onReap) })
    }
}
