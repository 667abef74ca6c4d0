/// Which media loop each handle's PeerConnection lives on, and the groups (rooms) that keep
/// handles together. A value type, so the rules are tested without threads; `MediaLoops` keeps
/// one behind a lock.
///
/// The rules: a handle is placed when its first PeerConnection is set up and stays on that loop
/// while it lives (its SRTP state and paths belong to the loop), with one exception: a handle
/// that joins a group on another loop before its PeerConnection was answered (a `joinandconfigure`
/// offer) moves there, since nobody has its candidates yet (`MediaLoops.setGroup`). A handle in a
/// group goes to its group's loop. A group gets a loop from its first member to need one: the loop
/// that member already has, else the loop with the fewest handles. A group holds its loop while it
/// has members, placed or not, so handles that join later still meet there.
struct LoopPlacement {
    /// A group as the host sees it: the plugin that named it, and the plugin's number.
    struct GroupKey: Hashable {
        let plugin: UInt
        let group: UInt64
    }

    private struct Group {
        var loop: Int?
        var members = 0
    }

    private(set) var handlesOnLoop: [Int]
    private var loopOfHandle: [UInt64: Int] = [:]
    private var groupOfHandle: [UInt64: GroupKey] = [:]
    private var groups: [GroupKey: Group] = [:]

    init(loops: Int) {
        handlesOnLoop = Array(repeating: 0, count: max(1, loops))
    }

    var groupCount: Int { groups.count }

    func loop(of handle: UInt64) -> Int? { loopOfHandle[handle] }

    /// The handle's loop, placing it now if it has none.
    mutating func place(_ handle: UInt64) -> Int {
        if let loop = loopOfHandle[handle] { return loop }
        let loop: Int
        if let key = groupOfHandle[handle], let groupLoop = groups[key]?.loop {
            loop = groupLoop
        } else {
            loop = leastLoaded
            if let key = groupOfHandle[handle] { groups[key]?.loop = loop }
        }
        loopOfHandle[handle] = loop
        handlesOnLoop[loop] += 1
        return loop
    }

    /// Puts the handle in `group` (nil: in none). A placed handle keeps its loop; if its new group
    /// has no loop yet, the group takes the handle's.
    mutating func setGroup(_ handle: UInt64, _ group: GroupKey?) {
        guard groupOfHandle[handle] != group else { return }
        leaveGroup(handle)
        guard let group else { return }
        groupOfHandle[handle] = group
        groups[group, default: Group()].members += 1
        if groups[group]?.loop == nil, let loop = loopOfHandle[handle] { groups[group]?.loop = loop }
    }

    /// The loop the handle should be on and is not: its group's, when that differs from its own.
    func misplaced(_ handle: UInt64) -> (from: Int, to: Int)? {
        guard let from = loopOfHandle[handle], let key = groupOfHandle[handle], let to = groups[key]?.loop, to != from else { return nil }
        return (from, to)
    }

    /// Moves a placed handle to `loop` (its PeerConnection moved there before anyone used it).
    mutating func move(_ handle: UInt64, to loop: Int) {
        guard let from = loopOfHandle[handle], from != loop, handlesOnLoop.indices.contains(loop) else { return }
        handlesOnLoop[from] -= 1
        handlesOnLoop[loop] += 1
        loopOfHandle[handle] = loop
    }

    /// Forgets a handle that is gone.
    mutating func remove(_ handle: UInt64) {
        leaveGroup(handle)
        if let loop = loopOfHandle.removeValue(forKey: handle) { handlesOnLoop[loop] -= 1 }
    }

    private mutating func leaveGroup(_ handle: UInt64) {
        guard let key = groupOfHandle.removeValue(forKey: handle), var group = groups[key] else { return }
        group.members -= 1
        groups[key] = group.members > 0 ? group : nil
    }

    /// The loop with the fewest handles; the lowest index among equals.
    private var leastLoaded: Int {
        var best = 0
        for i in handlesOnLoop.indices where handlesOnLoop[i] < handlesOnLoop[best] { best = i }
        return best
    }
}
