import PipelineStore
import PipelineModel
import SeqDatabase
/// The dashboard's one page: its style, its script and its chart are all here (no CDN, no
/// font, nothing fetched but the store's own /api/), so it works on a farm without internet.
/// It polls the API every 2 s; every value is put in with textContent, never as HTML.
enum DashboardPage {
    static let html = #"""
    <!doctype html>
    <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
    <title>seqpipe</title>
    <style>
    body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
    header{background:#1d2330;color:#fff;padding:10px 18px;display:flex;gap:20px;align-items:baseline;flex-wrap:wrap}
    header h1{font-size:18px;margin:0} header a{color:#fff}
    #said{background:#fff3c4;color:#1d2330;padding:1px 8px;border-radius:4px} #said:empty{display:none}
    main{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:14px;padding:14px}
    section{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px 12px;overflow:auto;min-width:0}
    section.wide{grid-column:1/-1}
    h2{font-size:15px;margin:2px 0 8px}
    table{border-collapse:collapse;width:100%}
    th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #eef0f3;white-space:nowrap;font-variant-numeric:tabular-nums}
    td.clip{max-width:340px;overflow:hidden;text-overflow:ellipsis} section:not(.wide) td.clip{max-width:170px}
    td.none{color:#6b7280;font-style:italic}
    tr.job{cursor:pointer} tr.job:hover,tr.sel{background:#eef4ff}
    .bad{color:#b3261e;font-weight:600} .ok{color:#1e7b34} .muted{color:#6b7280} .warn{color:#8a5a00}
    .filters{display:flex;gap:6px;flex-wrap:wrap;margin-bottom:6px;align-items:center} .filters input,.filters select{font:inherit}
    #detail{white-space:pre-wrap;font:12px ui-monospace,monospace;background:#f6f7f9;padding:6px;margin:6px 0}
    pre.output{font:12px ui-monospace,monospace;background:#1d2330;color:#e8eaf0;padding:6px;max-height:220px;overflow:auto;white-space:pre-wrap;margin:2px 0 8px}
    button{font:inherit;margin-right:4px;padding:0 6px}
    .legend span{margin-right:12px} .sw{display:inline-block;width:10px;height:10px;margin-right:4px}
    svg text{font-size:11px;fill:#4b5563}
    </style></head>
    <body>
    <header><h1><a href="/">seqpipe</a></h1><span id="store"></span><span id="counts"></span><span id="queue"></span>
    <span class="muted">updated <span id="updated">never</span></span><span id="actions"></span><span id="said"></span></header>
    <main>
    <section class="wide" id="job-section" hidden><h2>Job <a id="joblink"></a> <button id="close">close</button></h2><div id="jobactions"></div>
    <div id="detail"></div><div id="outputs"></div></section>
    <section class="wide" id="devices-section"><h2>Devices</h2><table id="devices"><thead><tr><th>device</th><th>host</th><th>state</th><th>job</th><th>response</th><th>last hour</th><th>last day</th><th>why</th><th></th></tr></thead><tbody></tbody></table></section>
    <section class="wide" id="jobs-section"><h2>Jobs <span class="muted" id="jobcount"></span></h2>
    <div class="filters"><select id="f-status"><option value="">any status</option></select>
    <input id="f-account" placeholder="account"><input id="f-device" placeholder="device"><input id="f-error" placeholder="error type"><input id="f-q" placeholder="search">
    <span id="bulk"></span></div>
    <table id="jobs"><thead><tr><th>job</th><th>account</th><th>status</th><th>priority</th><th>device</th><th>attempt</th><th>error</th><th>waits for</th><th></th></tr></thead><tbody></tbody></table></section>
    <section id="workers-section"><h2>Workers</h2><table id="workers"><thead><tr><th>worker</th><th>host</th><th>device</th><th>state</th><th>since</th><th>job</th><th>server</th></tr></thead><tbody></tbody></table></section>
    <section><h2>Runs ended <select id="range"><option value="15">last 15 min</option><option value="60">last hour</option><option value="180" selected>last 3 hours</option><option value="1440">last day</option><option value="10080">last 7 days</option></select></h2>
    <div class="legend" id="legend"></div><div id="chart"></div></section>
    <section><h2>Accounts</h2><table id="accounts"><thead><tr><th>account</th><th>today</th><th>state</th><th>last hour</th><th>last day</th><th></th></tr></thead><tbody></tbody></table></section>
    <section><h2>Events</h2><table id="events"><thead><tr><th>at</th><th>kind</th><th>of</th><th>what</th></tr></thead><tbody></tbody></table></section>
    <section><h2>Recurring jobs</h2><table id="recurring"><thead><tr><th>job</th><th>state</th><th>next run</th><th>last outcome</th><th>failures in a row</th><th>last error</th></tr></thead><tbody></tbody></table></section>
    <section><h2>Alerts and checks</h2><table id="alerts"><thead><tr><th>what</th><th>says</th></tr></thead><tbody></tbody></table></section>
    </main>
    <script>
    const colors={success:"#2e9d4a",retryable:"#e0a400",permanent:"#c62828",infrastructure:"#5b6bd6"};
    const statuses=["pending","claimed","running","success","failed","retrying","cancelled"];
    let actions=false, selected=null, status={};
    const $=id=>document.getElementById(id);
    for(const s of statuses){const o=document.createElement("option");o.value=s;o.textContent=s;$("f-status").appendChild(o);}
    function cell(row,text,cls,full){const td=document.createElement("td");td.textContent=text==null?"":String(text);if(cls)td.className=cls;if(full)td.title=full;row.appendChild(td);return td;}
    function clip(row,text,cls){return cell(row,text,"clip"+(cls?" "+cls:""),text);}
    function fill(id,items,make){const body=document.querySelector("#"+id+" tbody");body.replaceChildren();
      if(!items.length){const tr=document.createElement("tr");const td=cell(tr,"none","none");td.colSpan=document.querySelectorAll("#"+id+" thead th").length||2;body.appendChild(tr);return;}
      for(const i of items){const tr=document.createElement("tr");make(tr,i);body.appendChild(tr);}}
    function button(parent,text,path,question){const b=document.createElement("button");b.textContent=text;b.dataset.action=path;
      b.onclick=e=>{e.stopPropagation();if(question&&!confirm(question))return;act(path);};parent.append(b);return b;}
    // A job's buttons, by what its status allows (the store decides again): retry, cancel.
    function jobButtons(parent,j){if(!actions)return;const id=encodeURIComponent(j.id);
      if(["failed","cancelled","retrying"].includes(j.status))button(parent,"retry","/api/jobs/"+id+"/retry");
      if(["pending","retrying","failed"].includes(j.status))button(parent,"cancel","/api/jobs/"+id+"/cancel");}
    function rate(r){if(!r||!r.attempts)return "–";return Math.round(100*r.success_rate)+"% of "+r.attempts;}
    function ago(s){if(s==null)return "";if(s<90)return Math.round(s)+" s";if(s<5400)return Math.round(s/60)+" min";if(s<172800)return (s/3600).toFixed(1)+" h";return (s/86400).toFixed(1)+" d";}
    function since(t){return t?ago((Date.now()-Date.parse(t))/1000)+" ago":"";}
    function clock(t){return t?t.slice(11,19):"";}
    function token(){let t=sessionStorage.getItem("seqpipe-token");if(!t){t=prompt("The token seqpipe serve printed at start:");if(t)sessionStorage.setItem("seqpipe-token",t);}return t||"";}
    async function act(path){
      const r=await fetch(path,{method:"POST",headers:{"Authorization":"Bearer "+token()}});const b=await r.json();
      if(r.status==401)sessionStorage.removeItem("seqpipe-token");
      $("said").textContent=(b.done||b.error);$("said").className=r.ok?"":"bad";refresh();}
    async function get(path){const r=await fetch(path);if(!r.ok)throw new Error(path+": "+r.status);return r.json();}
    function filters(){return {status:$("f-status").value,account:$("f-account").value,device:$("f-device").value,error:$("f-error").value,q:$("f-q").value};}
    function drawChart(data){
      const buckets=data.minutes,step=data.step_minutes||1,n=buckets.length;
      const W=Math.max(320,($("chart").clientWidth||600)),H=170,L=40,B=20,w=W-L-4,h=H-B-6,bw=w/Math.max(1,n);
      const totals=buckets.map(m=>Object.keys(colors).reduce((a,k)=>a+m[k],0)),max=Math.max(1,...totals);
      const ns="http://www.w3.org/2000/svg",svg=document.createElementNS(ns,"svg");
      svg.setAttribute("width",W);svg.setAttribute("height",H);svg.setAttribute("role","img");
      function el(name,attrs,text){const e=document.createElementNS(ns,name);for(const k in attrs)e.setAttribute(k,attrs[k]);if(text!=null)e.textContent=text;svg.appendChild(e);return e;}
      for(const v of [0,Math.ceil(max/2),max]){const y=6+h-v/max*h;el("line",{x1:L,x2:L+w,y1:y,y2:y,stroke:"#e5e7eb"});el("text",{x:L-6,y:y+4,"text-anchor":"end"},v);}
      el("line",{x1:L,x2:L,y1:6,y2:6+h,stroke:"#9ca3af"});
      buckets.forEach((m,i)=>{let y=6+h;for(const k of Object.keys(colors)){if(!m[k])continue;const bh=m[k]/max*h;y-=bh;
        const r=el("rect",{x:L+i*bw,y:y,width:Math.max(1,bw-0.5),height:bh,fill:colors[k],class:"bar "+k});
        const t=document.createElementNS(ns,"title");t.textContent=m.at+": "+m[k]+" "+k;r.appendChild(t);}});
      const label=t=>step>=60?t.slice(5,10)+" "+t.slice(11,16):t.slice(11,16);
      if(n){for(const [i,anchor] of [[0,"start"],[Math.floor(n/2),"middle"],[n-1,"end"]])el("text",{x:L+(i+0.5)*bw,y:H-4,"text-anchor":anchor},label(buckets[i].at)+(i==n-1?" UTC":""));}
      el("text",{x:L+4,y:16},"runs per "+(step==1?"minute":step+" minutes"));
      $("chart").replaceChildren(svg);
      $("legend").replaceChildren(...Object.entries(colors).map(([k,c])=>{const s=document.createElement("span");const b=document.createElement("i");b.className="sw";b.style.background=c;s.append(b,k+" "+buckets.reduce((a,m)=>a+m[k],0));return s;}));
    }
    function openJob(id,push){selected=id;if(push)history.pushState({job:id},"","/jobs/"+encodeURIComponent(id));showJob(id);}
    function closeJob(){selected=null;history.pushState({},"","/");$("job-section").hidden=true;}
    async function showJob(id){
      let j;try{j=await get("/api/jobs/"+encodeURIComponent(id));}catch(e){$("job-section").hidden=false;$("joblink").textContent=id;$("detail").textContent="no job "+id;return;}
      $("job-section").hidden=false;$("joblink").textContent=j.id;$("joblink").href="/jobs/"+encodeURIComponent(j.id);
      const lines=["status "+j.status+", account "+j.account+", priority "+j.priority+", device "+(j.device||"–")+", attempt "+j.attempt+" of "+j.attempt_limit,
        j.error?"error ("+(j.error_type||"")+"): "+j.error:"", j.waiting?"waits for: "+j.waiting:"", "payload: "+JSON.stringify(j.payload),"events:"];
      for(const e of j.events)lines.push("  "+e.at+"  "+e.kind+(e.device?"  "+e.device:"")+"  "+e.message);
      $("detail").textContent=lines.filter(Boolean).join("\n");
      const outs=$("outputs");outs.replaceChildren();
      for(const o of (j.outputs||[]).slice().reverse()){const h=document.createElement("div");h.className="muted";
        h.textContent="attempt "+o.attempt+", step "+o.step+(o.step_attempt>1?" (its try "+o.step_attempt+")":"")+": "+o.ending+", "+o.at;
        const p=document.createElement("pre");p.className="output";p.textContent=o.text||"(no output)";outs.append(h,p);}
      const a=$("jobactions");a.replaceChildren();
      jobButtons(a,j);
    }
    async function refresh(){
      try{
        const s=await get("/api/status");status=s;actions=s.actions;
        $("store").textContent=s.store+(s.config_version?", config "+s.config_version:"");
        $("counts").textContent=s.counts?Object.entries(s.counts).filter(([k,v])=>v).map(([k,v])=>v+" "+k).join(", "):"";
        $("queue").textContent="queue "+s.queue+", "+s.finished_per_minute+"/min: "+s.queue_outlook;
        $("actions").replaceChildren();
        if(actions)button($("actions"),"stop the run","/api/stop","Stop the orchestrator and its workers?");
        const running={};for(const w of s.workers||[])if(w.job)running[w.device]=w.job+(w.step?" ("+w.step+")":"");
        fill("devices",s.devices||[],(tr,d)=>{cell(tr,d.name);cell(tr,d.host||"");
          let state=d.paused?"PAUSED":d.healthy?"healthy":"UNHEALTHY";if(d.cooldown_until)state+=", held until "+clock(d.cooldown_until);
          if(d.server&&d.server.state)state+=", server "+d.server.state;if(d.phone)state+=", phone "+d.phone;
          cell(tr,state,d.paused||!d.healthy||d.cooldown_until?"bad":"ok");cell(tr,running[d.name]||"");cell(tr,d.response_ms==null?"–":d.response_ms+" ms");
          cell(tr,rate(d.last_hour));cell(tr,rate(d.last_day));clip(tr,d.paused?"paused "+(d.paused_reason||""):(d.last_error||""));
          const td=cell(tr,"");if(actions){const n="/api/devices/"+encodeURIComponent(d.name)+"/";
            button(td,d.paused?"resume":"pause",n+(d.paused?"resume":"pause"));if(d.cooldown_until)button(td,"release",n+"release");}});
        const servers={};for(const d of s.devices||[])if(d.server)servers[d.name]=(d.server.state||"not started")+(d.server.port?" :"+d.server.port:"")+(d.server.pid?" pid "+d.server.pid:"");
        fill("workers",s.workers||[],(tr,w)=>{cell(tr,w.index+(w.alive?"":" (gone)"),w.alive?"":"bad");cell(tr,w.host||"");cell(tr,w.device);cell(tr,w.state);
          cell(tr,since(w.since),"",w.since||"");cell(tr,w.job?w.job+(w.step?" ("+w.step+")":""):"");cell(tr,servers[w.device]||"–");});
        fill("accounts",s.accounts||[],(tr,a)=>{cell(tr,a.name);cell(tr,a.daily_limit?a.today+"/"+a.daily_limit:a.today);
          clip(tr,a.paused?"PAUSED: "+(a.paused_reason||""):a.cooldown_until?"cooldown until "+clock(a.cooldown_until):a.rest_until?"resting until "+clock(a.rest_until):"ok",a.paused?"bad":"");
          cell(tr,rate(a.last_hour));cell(tr,rate(a.last_day));const td=cell(tr,"");
          if(actions&&(a.paused||a.cooldown_until))button(td,"resume","/api/accounts/"+encodeURIComponent(a.name)+"/resume");});
        fill("recurring",s.recurring||[],(tr,r)=>{cell(tr,r.name);cell(tr,r.state);cell(tr,r.next_due||"");
          const ok=r.last_success&&(!r.last_failure||r.last_success>r.last_failure);
          cell(tr,r.last_success||r.last_failure?(ok?"success "+r.last_success:"failed "+r.last_failure):(r.skip_reason?"skipped: "+r.skip_reason:""),ok?"ok":(r.last_failure?"bad":""));cell(tr,r.consecutive_failures,r.consecutive_failures?"bad":"");clip(tr,r.last_error||"");});
        fill("alerts",(s.alerts||[]).map(a=>["ALERT "+a.kind,a.message,"bad"]).concat((s.checks||[]).map(c=>[c.name,c.message,c.ok?"ok":"bad"])),(tr,a)=>{cell(tr,a[0],a[2]);clip(tr,a[1]);});
        const f=filters(),filtered=Object.values(f).some(v=>v);
        const jobs=await get("/api/jobs?"+new URLSearchParams({...f,limit:"300"}));$("jobcount").textContent=jobs.total+" matching";
        $("bulk").replaceChildren();
        if(actions&&filtered){const q=new URLSearchParams(Object.fromEntries(Object.entries(f).filter(([k,v])=>v)));
          button($("bulk"),"retry all "+jobs.total,"/api/jobs/retry?"+q,"Retry every job matching these filters ("+jobs.total+")?");
          button($("bulk"),"cancel all "+jobs.total,"/api/jobs/cancel?"+q,"Cancel every job matching these filters ("+jobs.total+")?");}
        const reasons={};for(const w of s.waiting||[])reasons[w.job]=w.reason;
        fill("jobs",jobs.jobs,(tr,j)=>{tr.className="job"+(j.id==selected?" sel":"");tr.dataset.job=j.id;tr.onclick=()=>openJob(j.id,true);
          const td=cell(tr,"");const link=document.createElement("a");link.href="/jobs/"+encodeURIComponent(j.id);link.textContent=j.id;
          link.onclick=e=>{e.preventDefault();};td.append(link);
          cell(tr,j.account);cell(tr,j.status,j.status=="failed"?"bad":j.status=="success"?"ok":"");cell(tr,j.priority);cell(tr,j.device||"");cell(tr,j.attempt+"/"+j.attempt_limit);
          clip(tr,j.error?(j.error_type?j.error_type+": ":"")+j.error:"","bad");clip(tr,reasons[j.id]||"","warn");
          jobButtons(cell(tr,""),j);});
        const events=await get("/api/events?limit=50");
        fill("events",events.slice().reverse(),(tr,e)=>{cell(tr,clock(e.at),"",e.at);cell(tr,e.kind);cell(tr,e.job||e.device||e.account||"");clip(tr,e.message);});
        drawChart(await get("/api/throughput?minutes="+$("range").value));
        if(selected)showJob(selected);
        $("updated").textContent=new Date().toISOString().slice(11,19)+" UTC";
      }catch(e){$("updated").textContent="failed: "+e.message;}
    }
    for(const id of ["f-status","f-account","f-device","f-error","f-q","range"])$(id).addEventListener("input",refresh);
    $("close").onclick=closeJob;
    window.onpopstate=()=>{const m=location.pathname.match(/^\/jobs\/(.+)$/);if(m)openJob(decodeURIComponent(m[1]),false);else{selected=null;$("job-section").hidden=true;}};
    {const m=location.pathname.match(/^\/jobs\/(.+)$/);if(m)selected=decodeURIComponent(m[1]);}
    refresh();setInterval(refresh,2000);
    </script></body></html>
    """#
}
