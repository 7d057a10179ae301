/** The overlay graph (Cytoscape.js): peers as nodes, video flows as directed edges. */
import cytoscape, { type Core } from 'cytoscape';
import type { GraphEdge, GraphNode } from '../../../tracker/stats/types.js';
import { diffGraph, type EdgeData, type NodeData } from './shape.js';

export class OverlayGraph {
  readonly cy: Core;
  private readonly nodes = new Map<string, NodeData>();
  private readonly edges = new Map<string, EdgeData>();
  private laidOutFor = -1;

  constructor(container: HTMLElement, private readonly onHover: (title: string) => void, onSelect: (peerId: string | null) => void) {
    this.cy = cytoscape({
      container,
      minZoom: 0.01,
      maxZoom: 4,
      wheelSensitivity: 0.3,
      boxSelectionEnabled: false,
      textureOnViewport: true,
      style: [
        {
          selector: 'node',
          style: {
            'background-color': 'data(color)', width: 'data(size)', height: 'data(size)', label: 'data(label)',
            color: '#cfd6e0', 'font-size': 9, 'text-valign': 'bottom', 'text-margin-y': 3, 'min-zoomed-font-size': 7,
            'border-width': 0, 'text-outline-color': '#12161c', 'text-outline-width': 2,
          },
        },
        { selector: 'node[load >= 0]', style: { 'border-width': 3, 'border-color': 'mapData(load, 0, 1, #3ecf8e, #ef6f6c)' } },
        { selector: 'node[kind = "origin"]', style: { shape: 'round-rectangle', 'font-weight': 'bold' } },
        { selector: 'node[kind = "seeder"]', style: { shape: 'round-diamond' } },
        { selector: 'node:selected', style: { 'border-width': 3, 'border-color': '#ffffff' } },
        {
          selector: 'edge',
          style: {
            width: 'data(width)', 'line-color': '#3d4756', 'target-arrow-color': '#3d4756', 'target-arrow-shape': 'triangle',
            'arrow-scale': 0.8, 'curve-style': 'bezier', opacity: 0.85,
          },
        },
        { selector: 'edge[?active]', style: { 'line-color': '#5cc8ff', 'target-arrow-color': '#5cc8ff' } },
        { selector: 'edge[?upload]', style: { 'line-style': 'dashed' } },
      ],
    });
    this.cy.on('mouseover', 'node, edge', (e) => this.onHover(String(e.target.data('title') ?? '')));
    this.cy.on('mouseout', 'node, edge', () => this.onHover(''));
    this.cy.on('tap', (e) => {
      if (e.target === this.cy) onSelect(null);
      else if (e.target.isNode?.()) onSelect(String(e.target.id()));
    });
  }

  update(graph: { nodes: GraphNode[]; edges: GraphEdge[] }): void {
    const d = diffGraph({ nodes: this.nodes, edges: this.edges }, graph);
    const cy = this.cy;
    cy.batch(() => {
      for (const id of d.removeEdges) {
        cy.getElementById(id).remove();
        this.edges.delete(id);
      }
      for (const id of d.removeNodes) {
        cy.getElementById(id).remove();
        this.nodes.delete(id);
        for (const k of [...this.edges.keys()]) if (k.startsWith(`${id}>`) || k.endsWith(`>${id}`)) this.edges.delete(k);
      }
      if (d.addNodes.length) cy.add(d.addNodes.map((data) => ({ group: 'nodes' as const, data })));
      for (const n of d.addNodes) this.nodes.set(n.id, n);
      for (const n of d.updateNodes) {
        cy.getElementById(n.id).data(n);
        this.nodes.set(n.id, n);
      }
      if (d.addEdges.length) cy.add(d.addEdges.map((data) => ({ group: 'edges' as const, data })));
      for (const e of d.addEdges) this.edges.set(e.id, e);
      for (const e of d.updateEdges) {
        cy.getElementById(e.id).data(e);
        this.edges.set(e.id, e);
      }
    });
    if (d.relayout || this.laidOutFor !== this.nodes.size) this.layout();
  }

  /**
   * Small swarms: a top-down tree by depth from the origin (breadthfirst). Large ones: rings by
   * depth (concentric), which stays readable and cheap at hundreds of peers.
   */
  private layout(): void {
    this.laidOutFor = this.nodes.size;
    const n = this.nodes.size;
    const origins = this.cy.nodes('[kind = "origin"]');
    const opts =
      n <= 60 && origins.length > 0
        ? { name: 'breadthfirst', directed: true, roots: origins, spacingFactor: n <= 8 ? 1.35 : 0.9, animate: false, fit: true, padding: 30, avoidOverlap: true }
        : {
            name: 'concentric',
            concentric: (node: cytoscape.NodeSingular) => 100 - Math.min(99, Number(node.data('depth'))),
            levelWidth: () => 1,
            minNodeSpacing: n > 150 ? 4 : 14,
            spacingFactor: n > 150 ? 0.9 : 1.05,
            animate: false,
            fit: true,
            padding: 28,
            avoidOverlap: true,
          };
    this.cy.layout(opts as cytoscape.LayoutOptions).run();
    if (n <= 8) this.cy.zoom({ level: Math.min(this.cy.zoom(), 1.6), renderedPosition: { x: this.cy.width() / 2, y: this.cy.height() / 2 } });
  }

  select(peerId: string | null): void {
    this.cy.$(':selected').unselect();
    if (peerId) this.cy.getElementById(peerId).select();
  }

  drawnEdges(): Array<{ from: string; to: string }> {
    return this.cy.edges().map((e) => ({ from: String(e.data('source')), to: String(e.data('target')) }));
  }

  drawnNodes(): Array<{ id: string; kind: string }> {
    return this.cy.nodes().map((n) => ({ id: String(n.id()), kind: String(n.data('kind')) }));
  }
}
